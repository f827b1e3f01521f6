from anoean.cli import main

main()
