{
  "targets": [
    {
      "target_name": "sd_notify",
      "sources": ["sd_notify.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
