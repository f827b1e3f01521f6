"""Plain ``torch.nn`` building blocks: no optimiser, file or numpy array in sight.

* :mod:`.blocks`: the MLP, the conv encoder, input scaling, seeded construction, and
  :func:`~.blocks.describe` (the architecture a model file records);
* :mod:`.gan`: the GAN baselines' generators, encoders and discriminators;
* :mod:`.losses`: AnoEAN's losses.
"""
