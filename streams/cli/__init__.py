"""The ``conveyor`` command: the click group and the pipeline commands (:mod:`.main`), with the
``models`` (:mod:`.models`) and ``acls`` (:mod:`.acls`) groups.
"""
