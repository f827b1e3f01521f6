"""How neural detectors are trained, apart from what they are.

* :mod:`.loop`: the epoch loop, batch composition, early stopping and divergence handling;
* :mod:`.adversarial`: the one alternating discriminator / generator-encoder step;
* :mod:`.neural`: :class:`~.neural.NeuralDetector`, the fit template of every neural
  detector (seeding, hold-out, scaling, optimisers, loop, saved state).
"""
