# fish completion for cm-profile

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-profile -f
complete -c cm-profile -l role -x -d 'your role in the group you join'
complete -c cm-profile -l hook -d 'run as a Claude Code hook: silent, bounded, always exits 0'
complete -c cm-profile -s h -l help -d 'print this help'
complete -c cm-profile -l version -d 'print the version'
complete -c cm-profile -l json -d 'write JSON Lines: one object per line'
complete -c cm-profile -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-profile -n '__fish_use_subcommand' -a 'name summary status visible role-tag join leave'
