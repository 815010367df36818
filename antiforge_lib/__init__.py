"""antiforge_lib: the library behind the antiforge book.

It teaches and reproduces *Metric Learning for Anti-Compression Facial Forgery
Detection* (Cao, Zou, Mao, Wang; ACM MM 2021). One module per idea:

- :mod:`antiforge_lib.jpeg` -- JPEG's DCT quantization (Chapter 1)
- :mod:`antiforge_lib.samples` -- embedded sample images
- :mod:`antiforge_lib.exercises` -- self-checks for the chapters' exercises
"""

__version__ = "0.1.0"
