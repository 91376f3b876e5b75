"""imdb-exp's Hydra config tree; shipped as package data so the installed command finds it."""
