# fish completion for cm-launch

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-launch -f
complete -c cm-launch -l name -x -d 'the display name on the mesh (default: your name in the mesh, then the config\'s displayName, $USER, the host name)'
complete -c cm-launch -l resume -x -d 'resume the conversation with this session id (a UUID)'
complete -c cm-launch -s c -l continue -d 'continue the newest conversation'
complete -c cm-launch -l print-command -d 'print the command and environment as JSON instead of running claude'
complete -c cm-launch -s h -l help -d 'print this help'
complete -c cm-launch -l version -d 'print the version'
complete -c cm-launch -l json -d 'write JSON Lines: one object per line'
complete -c cm-launch -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
