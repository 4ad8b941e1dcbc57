"""The model contract between training, serving and the model sync, in one place.

- ``metadata``: ``metadata.json``'s schema (versioned, in ``schemas/``) and its typed reading;
- ``version_id``: the format of a version's id;
- ``canvas``: a drawing or an upload -> the 28x28 input the model sees;
- ``input_statistics``: the four statistics that tell served inputs from training data;
- ``model_store``: ``models/<version>/`` + ``CURRENT``, each written atomically.

Nothing is imported here: ``python3 -m mnist_contract.model_store`` runs on a deploy host's
plain Python, without numpy or jsonschema.
"""
