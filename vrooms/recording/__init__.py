"""Call recording: Janus writes, janus-pp-rec and ffmpeg make the documents, REST serves them."""
