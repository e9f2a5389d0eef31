# fish completion for cm

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_delegate
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l i 2
    while test $i -le (count $words)
        switch $words[$i]
            case --mesh
                set i (math $i + 2)
            case '-*'
                set i (math $i + 1)
            case '*'
                break
        end
    end
    if test $i -gt (count $words)
        return
    end
    set -l rest $words[$i..-1]
    set -e rest[1]
    set -l tool
    set -l sub
    switch $words[$i]
        case 'new' 'create'
            set tool cm-mesh
            set sub new
        case 'invite' 'share'
            set tool cm-mesh
            set sub invite
        case 'join' 'add'
            set tool cm-mesh
            set sub join
        case 'list' 'ls'
            set tool cm-mesh
            set sub list
        case 'use'
            set tool cm-mesh
            set sub use
        case 'rename'
            set tool cm-mesh
            set sub rename
        case 'leave'
            set tool cm-mesh
            set sub leave
        case 'members' 'member'
            set tool cm-mesh
            set sub members
        case 'mesh'
            set tool cm-mesh
        case 'peers' 'peer'
            set tool cm-peers
        case 'send'
            set tool cm-send
        case 'inbox'
            set tool cm-inbox
        case 'state'
            set tool cm-state
        case 'remember'
            set tool cm-memory
            set sub remember
        case 'recall'
            set tool cm-memory
            set sub recall
        case 'forget'
            set tool cm-memory
            set sub forget
        case 'memory'
            set tool cm-memory
        case 'task' 'tasks'
            set tool cm-task
        case 'context'
            set tool cm-context
        case 'reserve' 'reservations'
            set tool cm-reserve
        case 'vault'
            set tool cm-vault
        case 'grant'
            set tool cm-grant
            set sub grant
        case 'revoke'
            set tool cm-grant
            set sub revoke
        case 'block'
            set tool cm-grant
            set sub block
        case 'unblock'
            set tool cm-grant
            set sub unblock
        case 'grants'
            set tool cm-grant
            set sub list
        case 'webhook' 'webhooks'
            set tool cm-webhook
        case 'remind' 'schedule'
            set tool cm-remind
        case 'profile'
            set tool cm-profile
        case 'topic'
            set tool cm-topic
        case 'notifications' 'notification' 'notify'
            set tool cm-notify
        case 'apikey' 'api-key'
            set tool cm-apikey
        case 'bridge'
            set tool cm-bridge
        case 'file'
            set tool cm-file
        case 'doctor' 'status'
            set tool cm-doctor
        case 'whoami'
            set tool cm-id
            set sub whoami
        case 'register'
            set tool cm-id
            set sub register
        case 'login'
            set tool cm-id
            set sub login
        case 'logout'
            set tool cm-id
            set sub logout
        case 'id'
            set tool cm-id
        case 'install'
            set tool cm-install
        case 'uninstall'
            set tool cm-uninstall
        case 'launch' 'connect'
            set tool cm-launch
        case 'pipe'
            set tool cm-pipe
        case 'mcp'
            set tool cm-mcp
        case 'up'
            set tool cm-up
            set sub up
        case 'down'
            set tool cm-up
            set sub down
        case 'broker'
            set tool cm-broker
        case '*'
            __fish_complete_path $cur
            return
    end
    set -l line (string join ' ' -- $tool $sub (string escape -- $rest))
    if test -n "$cur"
        complete -C "$line "(string escape -- $cur)
    else
        complete -C "$line "
    end
end

complete -c cm -f
complete -c cm -n __fish_use_subcommand -l list -d 'print the names of the tools this cm is, one a line'
complete -c cm -n __fish_use_subcommand -s h -l help -d 'print this help'
complete -c cm -n __fish_use_subcommand -l version -d 'print the version'
complete -c cm -n __fish_use_subcommand -l json -d 'write JSON Lines: one object per line'
complete -c cm -n __fish_use_subcommand -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm -n '__fish_use_subcommand' -a 'new create invite share join add list ls use rename leave members member mesh peers peer send inbox state remember recall forget memory task tasks context reserve reservations vault grant revoke block unblock grants webhook webhooks remind schedule profile topic notifications notification notify apikey api-key bridge file doctor status whoami register login logout id install uninstall launch connect pipe mcp up down broker help links docs templates'
complete -c cm -n 'not __fish_use_subcommand' -a '(__claudemesh_delegate)'
