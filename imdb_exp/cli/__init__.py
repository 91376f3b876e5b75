"""The commands: imdb-exp, imdb-exp-predict, imdb-exp-compare, imdb-exp-ensemble."""
