"""How the estimators configure the training of the model they wrap."""
from genlab.apps import AnomalyDetector, Augmenter, Denoiser
from genlab.data import load_builtin


def test_estimators_train_without_sample_monitors_unless_the_model_needs_the_fid():
    for est in (AnomalyDetector(model="vae"), AnomalyDetector(model="pixelcnn", scoring="likelihood"),
                Denoiser(model="ae")):
        trainer = est._train_config()["trainer"]
        assert (trainer["monitor_every"], trainer["sample_every"], trainer["fid_samples"]) == (0, 0, 0), est
    # a GAN picks its best epoch by the FID monitor: that one stays on (its diversity monitor does not)
    trainer = Augmenter(model="cgan")._train_config()["trainer"]
    assert "fid_samples" not in trainer and trainer["monitor_every"] == 0
    # the user's trainer_config wins
    trainer = AnomalyDetector(model="vae", trainer_config={"fid_samples": 50, "monitor_every": 7})._train_config()
    assert (trainer["trainer"]["fid_samples"], trainer["trainer"]["monitor_every"]) == (50, 7)


def test_a_pixelcnn_detector_fit_draws_no_samples(monkeypatch):
    """The fit trains and scores; it never samples (sampling a PixelCNN is pixel by pixel and dominated the fit)."""
    import genlab.models.pixelcnn as pc
    calls = []
    real = pc.PixelCNN.sample
    monkeypatch.setattr(pc.PixelCNN, "sample", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    ds = load_builtin("digits", data_dir=None, download=False, split="train")
    x = (ds.x[:64].numpy() * 255).round() / 255  # 8-bit levels
    det = AnomalyDetector(model="pixelcnn", scoring="likelihood", epochs=1, batch_size=32,
                          model_config={"channels": 8, "layers": 2, "head_channels": 8}).fit(x)
    assert det.score_samples(x[:4]).shape == (4,)
    assert calls == []
