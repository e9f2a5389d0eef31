# fish completion for cm-mcp

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-mcp -f
complete -c cm-mcp -l log -r -F -d 'append routine log lines to FILE (else they go nowhere)'
complete -c cm-mcp -l peer-events -d 'push peers joining and leaving as [system] notifications'
complete -c cm-mcp -l task-events -d 'push every change to the mesh\'s tasks as [system] notifications'
complete -c cm-mcp -s h -l help -d 'print this help'
complete -c cm-mcp -l version -d 'print the version'
complete -c cm-mcp -l json -d 'write JSON Lines: one object per line'
complete -c cm-mcp -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
