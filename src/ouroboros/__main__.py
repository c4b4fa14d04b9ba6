from ouroboros.interfaces.cli.main import main

main()
