from waybillguard.entrypoints.cli import main

main()
