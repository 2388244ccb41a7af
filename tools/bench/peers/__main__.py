from conveyor.tools.bench.peers import main

main()
