"""The run folder that training writes and everything else reads.

* :mod:`.folder`: its layout (``spec.yaml``, ``history.csv``, ``metrics.json``,
  ``model.keras``, ``best.keras``, ``checkpoint/``), the lock, checkpoints, history
  and the resume state, every file read and written without following a link;
* :mod:`.model`: the one loader of a trained model with its spec (a run folder, a
  ``.keras`` file, or a spec with fresh weights), used by train, evaluate, predict,
  export and sweep.
"""
