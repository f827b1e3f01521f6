"""The bottom layer: what every other layer builds on, with numpy (and, for the detector
contract, scikit-learn) only; never torch.

* :mod:`.detector`: the detector contract (:class:`~.detector.BaseDetector`), save and load;
* :mod:`.validation`: input checks that name the row and the column;
* :mod:`.registry`: the one table of methods that ``load``, the CLI, the experiments and
  export read;
* :mod:`.modelfile`: the model-directory format, its digests and atomic writes;
* :mod:`.runtime`: seeds, devices, versions; :mod:`.splits`: the stratified hold-out and
  input scaling statistics; :mod:`.metrics`; :mod:`.gaussian` (Mahalanobis scoring);
  :mod:`.datachecks` (fit-time data warnings).
"""
