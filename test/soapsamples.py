"""
SOAP documents more than one test module compares against: the reference's
H2 FindMembership answer (section 8.3) and a typical ABCH fault.
"""

H2_RESPONSE = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.'
    b'org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="htt'
    b'p://www.w3.org/2001/XMLSchema"><soap:Header><ServiceHeader xmlns="http://www.msn.com/web'
    b'services/AddressBook"><Version>15.01.1408.0000</Version><CacheKey>12r1:EXAMPLEcacheKEY00'
    b'01</CacheKey><CacheKeyChanged>true</CacheKeyChanged><PreferredHostName>local-bay.contact'
    b's.msn.com</PreferredHostName><SessionId>5d2f8a70-3c1e-4b8a-9f00-1a2b3c4d5e6f</SessionId>'
    b'</ServiceHeader></soap:Header><soap:Body><FindMembershipResponse xmlns="http://www.msn.c'
    b'om/webservices/AddressBook"><FindMembershipResult><Services><Service><Memberships><Membe'
    b'rship><MemberRole>Allow</MemberRole><Members><Member xsi:type="PassportMember"><Membersh'
    b'ipId>101</MembershipId><Type>Passport</Type><State>Accepted</State><Deleted>false</Delet'
    b'ed><LastChanged>2009-12-30T10:00:00.0000000-08:00</LastChanged><JoinedDate>2009-06-01T10'
    b':00:00.0000000-07:00</JoinedDate><ExpirationDate>0001-01-01T00:00:00</ExpirationDate><Ch'
    b'anges /><PassportName>bob@example.com</PassportName><IsPassportNameHidden>false</IsPassp'
    b'ortNameHidden><PassportId>0</PassportId><CID>-2088434356712373620</CID><PassportChanges '
    b'/><LookedupByCID>false</LookedupByCID></Member><Member xsi:type="PassportMember"><Member'
    b'shipId>102</MembershipId><Type>Passport</Type><State>Accepted</State><Deleted>false</Del'
    b'eted><LastChanged>2009-12-30T10:00:00.0000000-08:00</LastChanged><JoinedDate>2009-06-01T'
    b'10:00:00.0000000-07:00</JoinedDate><ExpirationDate>0001-01-01T00:00:00</ExpirationDate><'
    b'Changes /><PassportName>carol@example.net</PassportName><IsPassportNameHidden>false</IsP'
    b'assportNameHidden><PassportId>0</PassportId><CID>3761009286463428211</CID><PassportChang'
    b'es /><LookedupByCID>false</LookedupByCID></Member></Members><MembershipIsComplete>true</'
    b'MembershipIsComplete></Membership><Membership><MemberRole>Block</MemberRole><Members></M'
    b'embers><MembershipIsComplete>true</MembershipIsComplete></Membership><Membership><Member'
    b'Role>Reverse</MemberRole><Members><Member xsi:type="PassportMember"><MembershipId>201</M'
    b'embershipId><Type>Passport</Type><State>Accepted</State><Deleted>false</Deleted><LastCha'
    b'nged>2009-12-30T10:00:00.0000000-08:00</LastChanged><JoinedDate>2009-06-01T10:00:00.0000'
    b'000-07:00</JoinedDate><ExpirationDate>0001-01-01T00:00:00</ExpirationDate><Changes /><Pa'
    b'ssportName>bob@example.com</PassportName><IsPassportNameHidden>false</IsPassportNameHidd'
    b'en><PassportId>0</PassportId><CID>-2088434356712373620</CID><PassportChanges /><Lookedup'
    b'ByCID>false</LookedupByCID></Member><Member xsi:type="PassportMember"><MembershipId>202<'
    b'/MembershipId><Type>Passport</Type><DisplayName>Dave D.</DisplayName><State>Accepted</St'
    b'ate><Deleted>false</Deleted><LastChanged>2009-12-30T10:00:00.0000000-08:00</LastChanged>'
    b'<JoinedDate>2009-06-01T10:00:00.0000000-07:00</JoinedDate><ExpirationDate>0001-01-01T00:'
    b'00:00</ExpirationDate><Changes /><PassportName>dave@example.com</PassportName><IsPasspor'
    b'tNameHidden>false</IsPassportNameHidden><PassportId>0</PassportId><CID>51002233445566778'
    b'89</CID><PassportChanges /><LookedupByCID>false</LookedupByCID></Member></Members><Membe'
    b'rshipIsComplete>true</MembershipIsComplete></Membership><Membership><MemberRole>Pending<'
    b'/MemberRole><Members><Member xsi:type="PassportMember"><MembershipId>301</MembershipId><'
    b'Type>Passport</Type><DisplayName>Dave D.</DisplayName><State>Accepted</State><Deleted>fa'
    b'lse</Deleted><LastChanged>2009-12-30T10:00:00.0000000-08:00</LastChanged><JoinedDate>200'
    b'9-06-01T10:00:00.0000000-07:00</JoinedDate><ExpirationDate>0001-01-01T00:00:00</Expirati'
    b'onDate><Changes /><PassportName>dave@example.com</PassportName><IsPassportNameHidden>fal'
    b'se</IsPassportNameHidden><PassportId>0</PassportId><CID>5100223344556677889</CID><Passpo'
    b'rtChanges /><LookedupByCID>false</LookedupByCID></Member></Members><MembershipIsComplete'
    b'>true</MembershipIsComplete></Membership></Memberships><Info><Handle><Id>1</Id><Type>Mes'
    b'senger</Type><ForeignId /></Handle><InverseRequired>false</InverseRequired><Authorizatio'
    b'nCriteria>Everyone</AuthorizationCriteria><IsBot>false</IsBot></Info><Changes /><LastCha'
    b'nge>2009-12-30T10:00:00.0000000-08:00</LastChange><Deleted>false</Deleted></Service></Se'
    b'rvices></FindMembershipResult></FindMembershipResponse></soap:Body></soap:Envelope>'
)

FAULT_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soap:Body><soap:Fault><faultcode>soap:Client</faultcode>"
    b"<faultstring>Passport name is not valid</faultstring>"
    b'<detail><errorcode xmlns="http://www.msn.com/webservices/AddressBook">InvalidPassportUser</errorcode>'
    b"</detail></soap:Fault></soap:Body></soap:Envelope>"
)
