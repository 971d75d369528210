"""services — 一件事一次办: the matter catalogue, bundles, applications, results, 好差评."""
