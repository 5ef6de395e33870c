-- Merges concurrent versions of a shopping cart, {"items": {"SKU": quantity, ...}}:
-- every item any version holds, each with the largest quantity any version
-- gives it (an item removed in one region and kept in another stays: put it
-- back to zero to drop it). Cannot decide when a version is not such a cart.
--
-- Example policy (a "lua:" path is relative to the topology file):
--   [[policy]]
--   prefix  = "cart/"
--   type    = "mvregister"
--   resolve = ["lua:resolvers/cart.lua"]
function resolve(siblings)
  local items = {}
  for i, s in ipairs(siblings) do
    local cart = s.value
    if type(cart) ~= "table" or type(cart.items) ~= "table" then
      return nil, "version " .. i .. " (from " .. s.region .. ") is not a cart with items"
    end
    for sku, qty in pairs(cart.items) do
      if type(sku) ~= "string" or math.type(qty) ~= "integer" or qty < 0 then
        return nil, "version " .. i .. " (from " .. s.region .. ") has a bad quantity for " .. tostring(sku)
      end
      if items[sku] == nil or qty > items[sku] then items[sku] = qty end
    end
  end
  -- A table that came from a JSON object carries a metatable saying so:
  -- giving `out` the same one keeps an empty cart {} rather than [].
  local out = setmetatable({}, getmetatable(siblings[1].value.items))
  for sku, qty in pairs(items) do
    if qty > 0 then out[sku] = qty end
  end
  return {items = out}
end
