"""The Sync API pipeline (`streaming.provider = "assemblyai-sync"`): the local detector cuts
the captured audio into utterances, each is POSTed to AssemblyAI's Sync API (uploaded while
the person speaks) and becomes one published turn; what could not be sent waits in the
pending spool of the state directory and is retried in order."""
