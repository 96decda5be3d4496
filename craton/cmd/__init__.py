"""Console scripts: craton-api, craton-manage, craton-worker."""
