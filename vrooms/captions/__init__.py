"""Live captions: speech recognition on the call's audio, by speaker, with engines that run offline.

``engines``: the one streaming interface every engine implements (feed PCM, get partial and
final hypotheses with word times) and the engines (PocketSphinx, embedded; Vosk, with models
a deployment brings). ``utterances``: voice activity detection that cuts a speaker's audio into
utterances (silence costs no engine time). ``workers``: engines run in worker processes, never
in the call host's event loop. ``transcriber``: one speaker's audio in, captions out.
"""
