"""The Spherical Fourier Neural Operator as a 6-hour stepper (``model``) and its training loop
in plain torch (``training``)."""
