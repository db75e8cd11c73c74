"""``python -m modelpier.cli ...``: the ``pier`` command, for children that need an absolute argv."""

from modelpier.cli.main import main

if __name__ == "__main__":
    main()
