"""Job graphs: references from one job's spec to another job's outputs (`references`), and the
graph they make across the manifests (`graph`: resolution of keys, cycles, topological order).
Pure; imports nothing of the project but `model`, so `validate` can use it offline."""
