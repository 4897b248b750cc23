from edgeag.cli.app import main

main()
