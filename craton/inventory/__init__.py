"""The inventory domain: select → resolve → bundle, and the objects they read.

No Flask and no TaskFlow here, so the API and the job runner share every line."""
