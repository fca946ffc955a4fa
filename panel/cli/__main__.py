from panel.cli.main import main

main()
