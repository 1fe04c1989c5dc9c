"""A tiny genlab model package of genlab's own tests: ``tiny-vae``, registered through the ``genlab.models`` entry
point (see ``genlab_ext_demo-0.1.dist-info/entry_points.txt`` and docs/models/adding.md)."""
