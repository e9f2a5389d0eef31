# fish completion for cm-peers

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-peers -f
complete -c cm-peers -l all -d 'also list control-plane connections (one-shot tools)'
complete -c cm-peers -s h -l help -d 'print this help'
complete -c cm-peers -l version -d 'print the version'
complete -c cm-peers -l json -d 'write JSON Lines: one object per line'
complete -c cm-peers -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
