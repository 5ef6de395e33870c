-- Settles concurrent updates of an order's status, {"status": "...", ...}:
-- the version furthest along new -> paid -> shipped -> delivered wins, and
-- "cancelled" wins over all of them; among versions with the same status,
-- the one written last (by HLC) wins. Cannot decide on a status it does not
-- know, so that a person looks at it.
--
-- Example policy:
--   [[policy]]
--   prefix  = "order/"
--   type    = "mvregister"
--   resolve = ["lua:resolvers/order_status.lua"]
local rank = {new = 1, paid = 2, shipped = 3, delivered = 4, cancelled = 5}

function resolve(siblings)
  local best, best_rank
  -- Siblings come in canonical order: by HLC, then replica. A later one of
  -- equal rank replaces an earlier one, so the last writer wins a tie.
  for i, s in ipairs(siblings) do
    local order = s.value
    local r = type(order) == "table" and rank[order.status]
    if not r then
      return nil, "version " .. i .. " (from " .. s.region .. ") has no known status"
    end
    if best == nil or r >= best_rank then
      best, best_rank = order, r
    end
  end
  return best
end
