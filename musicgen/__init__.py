"""The library behind preprocess.py, train.py and generate.py."""
