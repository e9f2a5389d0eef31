# fish completion for cm-uninstall

complete -c cm-uninstall -f
complete -c cm-uninstall -s n -l dry-run -d 'print what would be removed, and remove nothing'
complete -c cm-uninstall -s h -l help -d 'print this help'
complete -c cm-uninstall -l version -d 'print the version'
complete -c cm-uninstall -l json -d 'write JSON Lines: one object per line'
