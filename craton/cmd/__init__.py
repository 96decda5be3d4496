"""Console scripts: craton-api, craton-manage."""
