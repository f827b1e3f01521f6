"""Data in: the paper's datasets and protocol, table files, and their preprocessing.

* :mod:`.datasets`: NSL-KDD, KDD Cup 99 and MNIST, checksummed;
* :mod:`.protocol`: the paper's train / validation / test splits;
* :mod:`.tables`: reading CSV and Parquet files with errors that name line and column;
* :mod:`.preprocessing`: the fitted, JSON-serialisable table preprocessor.
"""
