# fish completion for cm-install

complete -c cm-install -f
complete -c cm-install -s n -l dry-run -d 'print what would change, and change nothing'
complete -c cm-install -l no-hooks -d 'leave Claude Code\'s settings.json alone'
complete -c cm-install -l no-skill -d 'do not install the skill'
complete -c cm-install -s h -l help -d 'print this help'
complete -c cm-install -l version -d 'print the version'
complete -c cm-install -l json -d 'write JSON Lines: one object per line'
