"""antiforge_lib: the library behind the antiforge book.

It teaches and reproduces *Metric Learning for Anti-Compression Facial Forgery
Detection* (Cao, Zou, Mao, Wang; ACM MM 2021). One module per idea:

- :mod:`antiforge_lib.jpeg` -- JPEG's DCT quantization (Chapter 1)
- :mod:`antiforge_lib.data` -- from videos to training pairs (Chapter 2): ``layout`` (the FaceForensics++ folders and
  splits), ``video`` (H.264 at c0/c23/c40), ``faces`` (face boxes and the face-crop pipeline), ``pairs`` (the
  pixel-aligned HQ/LQ/mask pair cache), ``index`` (the cache's index), ``sample`` (the embedded real-face mini
  FaceForensics++), ``loaders`` (the paired datasets and fastai loaders)
- :mod:`antiforge_lib.models` -- the two-branch network, its single-branch baseline, the critic (Chapter 3)
- :mod:`antiforge_lib.losses` -- the metric, pair, attention, transfer and adversarial losses (Chapters 4-6)
- :mod:`antiforge_lib.config` -- ``TrainConfig``: every setting of a run, its model kind and presets (Chapter 7)
- :mod:`antiforge_lib.learner` -- the fastai learners and their losses (Chapter 7)
- :mod:`antiforge_lib.callbacks` -- adversarial alignment, loss breakdown, per-epoch scores (Chapter 7)
- :mod:`antiforge_lib.checkpoint` -- checkpoints, resume, early stopping, divergence (Chapter 7's plumbing)
- :mod:`antiforge_lib.run` -- one resumable run as one call (``fit_run``), ``build_learner``, ``detector.pth``
- :mod:`antiforge_lib.metrics` -- ACC, AUC, TAR@FAR, PBCA, video AUC, ``evaluate`` (Chapter 8)
- :mod:`antiforge_lib.detect` -- score a new image or video with a trained detector (Chapter 8)
- :mod:`antiforge_lib.ablation` -- the paper's Table 3 as configs, ``run_ablation`` (Chapter 9)
- :mod:`antiforge_lib.viz` -- distance histograms, t-SNE/UMAP maps, the attention gallery (Figs. 3, 5; Chapter 10)
- :mod:`antiforge_lib.cli` -- ``python -m antiforge_lib`` / ``antiforge``: prepare, train, evaluate, detect
- :mod:`antiforge_lib.provenance` -- results files that say what produced them (private plumbing: ``_io``, ``_hub``)
- :mod:`antiforge_lib.samples` -- embedded sample images, and ``sample_pairs``: the chapters' pair cache in one call
- :mod:`antiforge_lib.exercises` -- self-checks for the chapters' exercises
"""

__version__ = "0.1.0"
