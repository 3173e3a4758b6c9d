-- tcpchatx.lua: a Wireshark dissector for the TCPChatX chat protocol.
--
-- Theory of operation
-- -------------------
-- TCPChatX speaks lines of UTF-8 text ending in "\n" (docs/protocol.md).  TCP is a
-- byte stream, so one segment may carry half a line or several lines.  Wireshark's
-- TCP dissector hands us the payload; we cut it at every "\n" and show one subtree
-- per line.  If the payload ends in the middle of a line we ask TCP for more bytes
-- (pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT): Wireshark then calls us again
-- with the segments glued together, in the frame that completes the line.
--
-- Direction: a packet whose source port is the server's port goes server->client.
-- The server's port is the "tcpchatx.port" preference (25000), or the port a
-- "Decode As" rule chose, or the port the heuristic saw sending the first line.
--
-- Kinds, the same words as tcpchatx/protocol.py's Kind enum:
--   server->client lines start with a sigil:
--     "<nick> text"   chat      "*nick* text"  private   "* nick text"  action (/me)
--     "*** text"      notice    "--- text"     reply     "!!! text"  error
--   (an action's "* " is never a notice's "*** ", whatever text follows the nick)
--   client->server lines:
--     nickname  (lines before the server's "--- Welcome, NICK!" reply)
--     command   ("/name args")
--     message   (anything else; "//x" sends the message "/x")
--
-- The kind of a client line depends on what came before it on its connection
-- (has the server welcomed it yet? what is its nickname now?).  Wireshark dissects
-- every packet once in order (pinfo.visited is false), then again, in any order,
-- whenever a user clicks one.  So on the first pass we follow each connection's
-- state and remember each line's meaning, keyed by frame number and the line's
-- place in what TCP handed us; later passes read the remembered meaning.
-- (We read no other protocol's fields: Wireshark's first pass may build no tree,
-- and then field extractors such as Field.new("tcp.stream") return nothing.)
--
-- Load it for one run:   tshark -X lua_script:tcpchatx.lua -r chat.pcapng -Y tcpchatx
-- or install it:         tcpchatx dissector --install   (see docs/wireshark.md)

-- Another copy may already be loaded (say, an installed plugin and a -X lua_script):
-- keep the first one rather than stop Wireshark with "two protocols with the same name".
local created, tcpchatx = pcall(Proto, "tcpchatx", "TCPChatX chat protocol")
if not created then
    io.stderr:write("tcpchatx.lua: a TCPChatX dissector is already loaded; this copy is not used\n")
    return
end

local DEFAULT_PORT = 25000
local MAX_LINE_BYTES = 1024 -- a longer line is discarded by the server (protocol.py)

-- Every field, defined once.  `tshark -G fields | grep tcpchatx` lists them.
local f = {
    kind = ProtoField.string("tcpchatx.kind", "Kind"),
    direction = ProtoField.string("tcpchatx.direction", "Direction"),
    line = ProtoField.string("tcpchatx.line", "Line"),
    nick = ProtoField.string("tcpchatx.nick", "Nick"),
    text = ProtoField.string("tcpchatx.text", "Text"),
    command = ProtoField.string("tcpchatx.command", "Command"),
    args = ProtoField.string("tcpchatx.args", "Arguments"),
    client = ProtoField.string("tcpchatx.client", "Client's nickname on this connection"),
}
tcpchatx.fields = { f.kind, f.direction, f.line, f.nick, f.text, f.command, f.args, f.client }

local e_invalid = ProtoExpert.new("tcpchatx.invalid", "Not a valid TCPChatX line",
    expert.group.MALFORMED, expert.severity.WARN)
tcpchatx.experts = { e_invalid }

tcpchatx.prefs.port = Pref.uint("Server TCP port", DEFAULT_PORT,
    "The chat server's port: segments from it go server->client")

local SERVER_TO_CLIENT = "server->client"
local CLIENT_TO_SERVER = "client->server"

-- --------------------------------------------------------------------------- state

-- streams[connection] = { server_port, nick, welcomed }: each connection's state as
-- the first pass reaches it.  meaning["frame:length:offset"] = the parsed line.
local streams = {}
local meaning = {}

function tcpchatx.init()
    streams = {}
    meaning = {}
end

-- A connection is its two endpoints, written the same way in both directions.
local function connection_of(pinfo)
    local a = tostring(pinfo.src) .. "/" .. pinfo.src_port
    local b = tostring(pinfo.dst) .. "/" .. pinfo.dst_port
    if a < b then return a .. " " .. b end
    return b .. " " .. a
end

-- --------------------------------------------------------------------------- text

-- Is `s` valid UTF-8?  (Lua 5.2 has no utf8 library.)  Overlong forms, surrogates
-- and code points past U+10FFFF are refused, as Python's decoder refuses them.
local function valid_utf8(s)
    local i, n = 1, #s
    while i <= n do
        local c = s:byte(i)
        local need, min, lo, hi
        if c < 0x80 then
            need = 0
        elseif c >= 0xC2 and c <= 0xDF then
            need, lo, hi = 1, 0x80, 0xBF
        elseif c >= 0xE0 and c <= 0xEF then
            need = 2
            lo = (c == 0xE0) and 0xA0 or 0x80
            hi = (c == 0xED) and 0x9F or 0xBF
        elseif c >= 0xF0 and c <= 0xF4 then
            need = 3
            lo = (c == 0xF0) and 0x90 or 0x80
            hi = (c == 0xF4) and 0x8F or 0xBF
        else
            return false
        end
        if need > 0 then
            if i + need > n then return false end
            local second = s:byte(i + 1)
            if second < lo or second > hi then return false end
            for k = 2, need do
                local b = s:byte(i + k)
                if b < 0x80 or b > 0xBF then return false end
            end
        end
        i = i + need + 1
    end
    return true
end

local function strip(s)
    return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- --------------------------------------------------------------------------- parsing

-- A server line: its kind, the nick it is from (chat/private/action), its text.
-- The same rules as protocol.parse_server_line.
local SIGILS = { { "*** ", "notice" }, { "--- ", "reply" }, { "!!! ", "error" } }

local function parse_server_line(line)
    for _, sigil in ipairs(SIGILS) do
        if line:sub(1, 4) == sigil[1] then
            return { kind = sigil[2], text = line:sub(5) }
        end
    end
    local nick, text = line:match("^<([^<>%s]+)> (.*)$")
    if nick then return { kind = "chat", nick = nick, text = text } end
    nick, text = line:match("^%*([^%*%s]+)%* (.*)$")
    if nick then return { kind = "private", nick = nick, text = text } end
    nick, text = line:match("^%* ([^%*%s]+) (.*)$")
    if nick then return { kind = "action", nick = nick, text = text } end
    return { kind = "notice", text = line } -- unknown shape: a plain notice
end

-- Does the line start like a server line (a sigil, or "<nick> ", "*nick* ")?  Not an
-- action's "* nick ": IMAP servers speak first too, with "* OK ...", and a TCPChatX
-- server never opens with an action.
local function has_sigil(line)
    local sigil = line:sub(1, 4)
    return sigil == "*** " or sigil == "--- " or sigil == "!!! " or
        line:match("^<[^<>%s]+> ") ~= nil or line:match("^%*[^%*%s]+%* ") ~= nil
end

-- A client line after the nickname.  The same rules as protocol.parse_client_line.
local function parse_client_line(line)
    if line:sub(1, 2) == "//" then
        return { kind = "message", text = line:sub(2) }
    end
    if line:sub(1, 1) == "/" then
        local name, args = line:sub(2):match("^([^ ]*) ?(.*)$")
        return { kind = "command", command = name:lower(), args = strip(args) }
    end
    return { kind = "message", text = line }
end

-- What a line means, following (and updating) its connection's state.
local function interpret(state, direction, line)
    if direction == SERVER_TO_CLIENT then
        local m = parse_server_line(line)
        if m.kind == "reply" then
            local welcomed = m.text:match("^Welcome, (.-)! ")
            if welcomed then
                state.nick, state.welcomed = welcomed, true
            end
        elseif m.kind == "notice" then
            local old, new = m.text:match("^(%S+) is now known as (%S+)$")
            if old and old == state.nick then state.nick = new end
        end
        m.client = state.nick
        return m
    end
    if not state.welcomed then
        -- Until the server welcomes it, every line is a nickname attempt.
        local nick = line:sub(1, 1) ~= "/" and strip(line) or nil
        return { kind = "nickname", nick = nick, text = line, client = state.nick }
    end
    local m = parse_client_line(line)
    m.nick, m.client = state.nick, state.nick
    return m
end

-- --------------------------------------------------------------------------- direction

local function stream_state(pinfo)
    local connection = connection_of(pinfo)
    local state = streams[connection]
    if not state then
        state = { welcomed = false }
        streams[connection] = state
    end
    return state
end

-- Which port is the server's?  The first answer sticks for the whole connection.
local function server_port_of(state, pinfo, first_line)
    if state.server_port then return state.server_port end
    local src, dst = pinfo.src_port, pinfo.dst_port
    local pref = tcpchatx.prefs.port
    local port
    if src == pref or dst == pref then
        port = pref
    elseif pinfo.match_uint == src or pinfo.match_uint == dst then
        port = pinfo.match_uint -- a "Decode As" rule picked this port
    elseif first_line and has_sigil(first_line) then
        port = src -- it starts with a server sigil, so it comes from the server
    else
        port = math.min(src, dst) -- servers usually have the lower port
    end
    state.server_port = port
    return port
end

-- --------------------------------------------------------------------------- the tree

local function describe(m)
    if m.kind == "chat" then return "chat <" .. m.nick .. "> " .. m.text end
    if m.kind == "private" then return "private *" .. m.nick .. "* " .. m.text end
    if m.kind == "action" then return "action * " .. m.nick .. " " .. m.text end
    if m.kind == "command" then
        return "command: /" .. m.command .. (m.args ~= "" and " " .. m.args or "")
    end
    if m.kind == "invalid" then return "invalid: " .. m.why end
    return m.kind .. ": " .. m.text
end

local function add_line(tree, range, direction, line, m)
    local sub = tree:add(tcpchatx, range, "TCPChatX " .. describe(m))
    sub:add(f.kind, range, m.kind)
    sub:add(f.direction, range, direction)
    if line then sub:add(f.line, range, line) end
    if m.nick then sub:add(f.nick, range, m.nick) end
    if m.text then sub:add(f.text, range, m.text) end
    if m.command then sub:add(f.command, range, m.command) end
    if m.args then sub:add(f.args, range, m.args) end
    if m.client then sub:add(f.client, range, m.client):set_generated() end
    if m.kind == "invalid" then sub:add_proto_expert_info(e_invalid, m.why) end
end

-- --------------------------------------------------------------------------- dissecting

-- Cut the payload into lines; ask TCP for more if it ends inside a line.
local function dissect(tvb, pinfo, tree)
    local length = tvb:len()
    if length == 0 then return 0 end
    local state = stream_state(pinfo)
    local bytes = tvb:raw(0, length)
    local first_line = bytes:match("^([^\n]*)\n")
    local server_port = server_port_of(state, pinfo, first_line)
    local direction = pinfo.src_port == server_port and SERVER_TO_CLIENT or CLIENT_TO_SERVER
    -- A line's name for the cache: the same in every pass over the same frame.
    local key_prefix = pinfo.number .. ":" .. length .. ":"

    pinfo.cols.protocol = "TCPChatX"
    local summaries = {}
    local offset = 0
    while offset < length do
        local newline = bytes:find("\n", offset + 1, true)
        if not newline then
            if length - offset > MAX_LINE_BYTES + 1 then
                -- Longer than any line may be: do not buffer it, show it as invalid.
                local m = { kind = "invalid", why = "longer than " .. MAX_LINE_BYTES ..
                    " bytes without a newline (the server discards it)" }
                add_line(tree, tvb(offset), direction, nil, m)
                summaries[#summaries + 1] = describe(m)
                offset = length
                break
            end
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        local raw = bytes:sub(offset + 1, newline - 1)
        if raw:sub(-1) == "\r" then raw = raw:sub(1, -2) end -- "\r\n" is accepted too
        local range = tvb(offset, newline - offset)
        local key = key_prefix .. offset
        local m = meaning[key]
        if not m then
            if #raw > MAX_LINE_BYTES then
                m = { kind = "invalid", why = "line longer than " .. MAX_LINE_BYTES .. " bytes" }
            elseif not valid_utf8(raw) then
                m = { kind = "invalid", why = "not valid UTF-8" }
            elseif pinfo.visited then
                -- A line the first pass did not see: interpret it without changing state.
                local copy = { nick = state.nick, welcomed = state.welcomed }
                m = interpret(copy, direction, raw)
            else
                m = interpret(state, direction, raw)
            end
            meaning[key] = m
        end
        add_line(tree, range, direction, m.kind ~= "invalid" and raw or nil, m)
        summaries[#summaries + 1] = describe(m)
        offset = newline
    end
    if #summaries > 0 then
        pinfo.cols.info = table.concat(summaries, " | ")
    end
    return length
end

function tcpchatx.dissector(tvb, pinfo, tree)
    return dissect(tvb, pinfo, tree)
end

-- --------------------------------------------------------------------------- heuristic

-- Does this payload look like a TCPChatX server speaking?  Strict on purpose, so
-- that other text protocols on unknown ports are not claimed:
--   * it starts with the server's welcome notice, or
--   * it holds at least one complete line, and every complete line is valid UTF-8,
--     at most 1024 bytes, free of control characters, and starts with a sigil.
local WELCOME = "*** Welcome to TCPChatX!"

local function looks_like_server(bytes)
    if bytes:sub(1, #WELCOME) == WELCOME then return true end
    local lines = 0
    for raw in bytes:gmatch("([^\n]*)\n") do
        if raw:sub(-1) == "\r" then raw = raw:sub(1, -2) end
        if #raw > MAX_LINE_BYTES or not valid_utf8(raw) then return false end
        if raw:find("[%z\1-\8\10-\31\127]") then return false end
        if not has_sigil(raw) then return false end
        lines = lines + 1
    end
    return lines > 0
end

local function heuristic(tvb, pinfo, tree)
    local length = tvb:len()
    if length == 0 then return false end
    local bytes = tvb:raw(0, math.min(length, 16 * (MAX_LINE_BYTES + 2)))
    if not looks_like_server(bytes) then return false end
    -- It is ours: this segment came from the server, and the rest of the
    -- connection (the client's lines too) goes straight to our dissector.
    local state = stream_state(pinfo)
    state.server_port = state.server_port or pinfo.src_port
    pinfo.conversation = tcpchatx
    dissect(tvb, pinfo, tree)
    return true
end

-- --------------------------------------------------------------------------- registering

local registered_port = nil

local function register_port()
    local tcp_port = DissectorTable.get("tcp.port")
    if registered_port then tcp_port:remove(registered_port, tcpchatx) end
    registered_port = tcpchatx.prefs.port
    if registered_port ~= 0 then tcp_port:add(registered_port, tcpchatx) end
end

function tcpchatx.prefs_changed()
    if registered_port ~= tcpchatx.prefs.port then register_port() end
end

register_port()
tcpchatx:register_heuristic("tcp", heuristic)
