# fish completion for cm-webhook

function __claudemesh_meshes
    cm-mesh list --json 2>/dev/null | awk -F'"slug":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

function __claudemesh_peers
    cm-peers --json 2>/dev/null | awk -F'"name":"' 'NF > 1 { split($2, a, "\""); print a[1] }'
end

complete -c cm-webhook -f
complete -c cm-webhook -s h -l help -d 'print this help'
complete -c cm-webhook -l version -d 'print the version'
complete -c cm-webhook -l json -d 'write JSON Lines: one object per line'
complete -c cm-webhook -l mesh -x -a '(__claudemesh_meshes)' -d 'use this mesh instead of the default one'
complete -c cm-webhook -n __fish_use_subcommand -a create -d 'make a webhook and print its URL and secret, once'
complete -c cm-webhook -n __fish_use_subcommand -a add -d 'make a webhook and print its URL and secret, once'
complete -c cm-webhook -n __fish_use_subcommand -a new -d 'make a webhook and print its URL and secret, once'
complete -c cm-webhook -n __fish_use_subcommand -a list -d 'the mesh\'s webhooks, without their secrets'
complete -c cm-webhook -n __fish_use_subcommand -a ls -d 'the mesh\'s webhooks, without their secrets'
complete -c cm-webhook -n __fish_use_subcommand -a delete -d 'delete a webhook; its URL answers 404'
complete -c cm-webhook -n __fish_use_subcommand -a rm -d 'delete a webhook; its URL answers 404'
complete -c cm-webhook -n __fish_use_subcommand -a remove -d 'delete a webhook; its URL answers 404'
complete -c cm-webhook -n '__fish_seen_subcommand_from create add new' -s t -l to -x -a '(__claudemesh_peers)' -d 'where a post\'s body goes: a member (NAME), a group (@group), a topic without a key (#topic) or everyone (*, the default)'
