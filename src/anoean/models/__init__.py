"""Every detector of the package, one module (or folder) each: AnoEAN (:mod:`.anoean`), the GAN
baselines (:mod:`.gan` and :mod:`.anogan`, :mod:`.egbad`, :mod:`.alad`) and the kernel
baselines (:mod:`.kernel`). Their names, classes and grids are listed once, in
:mod:`anoean.core.registry`.
"""
