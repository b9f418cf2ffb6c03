"""Administration while the line runs: IVR and screening versions, queues and operators'
skills applied to the running Asterisk, agencies, dispatch targets and shifts (issue 5)."""
