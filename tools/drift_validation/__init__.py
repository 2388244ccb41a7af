"""Offline validation of the drift monitor on the shared corpus: real text and document
sets (:mod:`.corpus`) and the shift scenarios run over them (:mod:`.scenarios`)."""
