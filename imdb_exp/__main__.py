"""`python -m imdb_exp`: the imdb-exp command, also where no console script is installed."""

from imdb_exp.cli.main import main

main()
