-- Admit and create in one step, one round trip (after admit.lua and create.lua). KEYS:
-- create's five, then admit's. ARGV[1]: how many of the rest are admit's; then admit's
-- arguments, then create's. Nothing is created for a flow the limits refuse.
local admit_args = tonumber(ARGV[1])
local verdict = admit({unpack(KEYS, 6, #KEYS)}, {unpack(ARGV, 2, 1 + admit_args)})
if verdict[1] == 'ok' then
  create({unpack(KEYS, 1, 5)}, {unpack(ARGV, 2 + admit_args, #ARGV)})
end
return verdict
