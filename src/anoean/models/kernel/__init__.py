"""The kernel baselines, OCSVM and SVM, on scikit-learn's libsvm; no torch."""
