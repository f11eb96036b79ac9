# %%
# Installs connlab where it is missing (Colab, a cluster's Jupyter); in a set-up clone it does nothing.
try:
    import connlab
except ImportError:
    import os, pathlib
    clone = next((p for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents) if (p / "src" / "connlab").is_dir()), None)
    source = os.environ.get("CONNLAB_SOURCE") or clone   # CONNLAB_SOURCE: the lab's folder or git URL
    if source is None:
        raise RuntimeError("connlab is not installed: set CONNLAB_SOURCE to the lab's folder or git URL and rerun")
    # %pip install -q "{source}"
    import importlib
    importlib.invalidate_caches()   # let this kernel see the freshly installed package
    import connlab
