"""Where things are when the user names nothing. Constants only (read at every start-up)."""

DEFAULT_MANIFEST_PATH = "manifests"
DEFAULT_STATE_PATH = "state/default.json"
DEFAULT_IGNORE_FILE = ".reconcilerignore"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
LOCATION_ENV = "GOOGLE_CLOUD_LOCATION"
