from rip.cli import main

main()
