# fish completion for cm-pipe

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-pipe -f
complete -c cm-pipe -s h -l help -d 'print this help'
complete -c cm-pipe -l version -d 'print the version'
complete -c cm-pipe -l json -d 'write JSON Lines: one object per line'
complete -c cm-pipe -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
