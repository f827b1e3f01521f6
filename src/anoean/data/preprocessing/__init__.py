"""A fitted, serialisable preprocessor for tables: one-hot categories, min-max numbers.

:class:`TabularPreprocessor` turns a table (a ``pyarrow.Table``, a ``RecordBatch``, a dict
of column name -> array-like, or a pandas ``DataFrame`` when pandas is installed) into a
``float32`` matrix. It learns everything it needs from the training table in :meth:`fit`
and nothing afterwards, so validation and test data never leak into it. Its state is plain
JSON (:meth:`to_json` / :meth:`save`), never pickle, so a saved model can be inspected and
loaded safely.

Output layout
-------------
Numeric columns come first, in the order of the fitted table, then one one-hot block per
categorical column: in the order given by ``categorical``, or in table order when the
categorical columns are inferred. ``feature_names_out_`` names every output column
(``src_bytes``, ``service=http``, ...).

Scaling
-------
``scaling="minmax"`` maps each numeric column with ``(x - min) / (max - min)`` using the
training minimum and maximum. A column that is constant in training (``max == min``) uses a
range of 1 instead, so it is 0 on the training data and ``x - min`` later (scikit-learn's
``MinMaxScaler`` does the same). Values outside the training range are **not clipped**: in
anomaly detection an out-of-range value is itself evidence of an anomaly, and clipping would
erase it. ``scaling="none"`` passes numbers through unchanged.

Missing and invalid values
--------------------------
There is no imputation: a null, NaN or infinite number, or a null category, raises a
``ValueError`` naming the column and the first bad row (0-based). Silently filling values in
would change what the model sees without anyone noticing.

Modules: :mod:`~anoean.data.preprocessing.preprocessor` (the class),
:mod:`~anoean.data.preprocessing.columns` (:func:`as_table` and the column readers) and
:mod:`~anoean.data.preprocessing.state` (the JSON state).
"""

from anoean.data.preprocessing.columns import as_table
from anoean.data.preprocessing.preprocessor import TabularPreprocessor

__all__ = ["TabularPreprocessor", "as_table"]
