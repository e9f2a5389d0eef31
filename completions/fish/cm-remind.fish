# fish completion for cm-remind

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_peers
    cm-peers --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-remind -f
complete -c cm-remind -l to -x -a '(__claudemesh_peers)' -d 'who gets it: a peer name or key, * or @group (default: you)'
complete -c cm-remind -l in -x -d 'deliver after this long: 90s, 30m, 2h, 1d, 1h30m'
complete -c cm-remind -l at -x -d 'deliver at HH:MM, YYYY-MM-DD HH:MM (local) or an RFC 3339 time'
complete -c cm-remind -l cron -x -d 'deliver at every match of a 5-field cron expression'
complete -c cm-remind -l tz -x -d 'the --cron offset from UTC, like +02:00 (no zone names)'
complete -c cm-remind -s h -l help -d 'print this help'
complete -c cm-remind -l version -d 'print the version'
complete -c cm-remind -l json -d 'write JSON Lines: one object per line'
complete -c cm-remind -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
