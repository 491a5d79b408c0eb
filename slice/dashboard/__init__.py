"""The read-only web dashboard of the hub: pure views (`model`, `views`), an aiohttp server
(`server`) fed by a hub poller (`source`), and static pages under `static/`."""
