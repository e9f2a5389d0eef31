# fish completion for cm-inbox

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-inbox -f
complete -c cm-inbox -l peek -d 'show the messages without marking them read'
complete -c cm-inbox -l wait -d 'block until a message arrives (at most SECS seconds, if given)'
complete -c cm-inbox -l hook -d 'run as Claude Code\'s UserPromptSubmit hook'
complete -c cm-inbox -s h -l help -d 'print this help'
complete -c cm-inbox -l version -d 'print the version'
complete -c cm-inbox -l json -d 'write JSON Lines: one object per line'
complete -c cm-inbox -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
